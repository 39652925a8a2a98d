resource "resin_image" "img" {
  name       = "img"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  file {
    path               = "/etc/app.conf"
    sensitive_contents = var.app_conf
  }
  file {
    path               = "/etc/ssh/ssh_host_ed25519_key"
    sensitive_contents = var.app_conf
    mode               = "0600"
  }
  # Public keys and certificates are not secrets.
  file {
    path     = "/root/.ssh/id_ed25519.pub"
    contents = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@example"
  }
  file {
    path     = "/etc/ssl/certs/internal-ca.pem"
    contents = "-----BEGIN CERTIFICATE-----"
  }
}
variable "app_conf" {
  type      = string
  sensitive = true
}
