resource "resin_image" "img" {
  name       = "img"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  file {
    path     = "/etc/app.conf"
    contents = "password = hunter2"
  }
}
# A private key's path is enough, whatever its contents look like.
resource "resin_image" "host_key" {
  name       = "host-key"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  file {
    path     = "/etc/ssh/ssh_host_ed25519_key"
    contents = var.host_key
    mode     = "0600"
  }
}
variable "host_key" {
  type = string
}
