resource "resin_image" "img" {
  name       = "img"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  file {
    path     = "/etc/motd"
    contents = "hello"
    mode     = "0666"
  }
}
