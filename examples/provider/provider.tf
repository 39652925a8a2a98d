provider "resin" {
  # Blob cache shared by concurrent runs (default: ~/.cache/resin).
  cache_dir = "/var/cache/resin"

  # Images resolve to this platform unless a resource says otherwise (default: linux/amd64).
  platform = "linux/amd64"

  # A registry request that stalls this long (seconds) is retried (default: 60).
  registry_timeout = 60

  # Credentials beyond those of `docker login` (~/.docker/config.json).
  registry {
    address  = "ghcr.io"
    username = "ci-bot"
    password = var.ghcr_token
  }

  # A registry that speaks plain HTTP, e.g. a local mirror on loopback.
  registry {
    address    = "127.0.0.1:5000"
    plain_http = true
  }
}

variable "ghcr_token" {
  description = "Token for ghcr.io."
  type        = string
  sensitive   = true
}
