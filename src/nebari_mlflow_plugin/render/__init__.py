"""What the plugin hands to Terraform, Helm and pods: Helm values, Terraform values, offline
manifests, the JupyterHub injection and the packages delivered to user and server pods.

Imports config/ and providers/, nothing above (tests/plugin/test_layout.py)."""
