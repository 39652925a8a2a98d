resource "resin_image" "img" {
  name       = "img"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  file {
    path               = "/etc/app.conf"
    sensitive_contents = var.app_conf
  }
}
variable "app_conf" {
  type      = string
  sensitive = true
}
