resource "resin_boot_check" "node" {
  image      = resin_image.node.spec
  output_dir = "./checks"
  expect     = ["Welcome to LinuxKit"]
}

# Published only once the image booted.
resource "resin_publish" "node" {
  images     = [resin_image.node.spec]
  repository = "registry.example.com/fleet/node"
  tag        = "v1"
  depends_on = [resin_boot_check.node]
}
