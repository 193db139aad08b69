# CalVer like Nebari and its plugins (YYYY.MM.N); above the public 2025.10.x releases
# of the same distribution, so `pip install -U nebari-mlflow-plugin` reaches it. The one
# source of the version: the rendered stage stamps it into the chart's Chart.yaml.
__version__ = "2026.12.0"
