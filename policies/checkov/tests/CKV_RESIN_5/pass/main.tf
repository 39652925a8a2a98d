resource "resin_image" "img" {
  name       = "img"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  services   = [resin_package.getty.spec]
  labels     = {
    environment = "staging"
  }
}
