"""The server package's jobs, unit by unit; these tests run in the mlflow environment
(the jobs import MLflow and SQLAlchemy as the MLflow image has them). How they behave
in their pods, against real PostgreSQL and stores: tests/e2e (support/pods.py)."""
