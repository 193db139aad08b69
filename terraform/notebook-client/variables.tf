variable "namespace" {
  description = "Nebari namespace: JupyterHub mounts ConfigMaps from there."
  type        = string
}

variable "config_maps" {
  description = "ConfigMap name -> files (file name -> content) of the notebook package."
  type        = map(map(string))

  validation {
    condition     = alltrue([for name in keys(var.config_maps) : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name))])
    error_message = "config_maps keys must be Kubernetes object names."
  }
}
