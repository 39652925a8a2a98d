resource "resin_boot_check" "node" {
  image      = resin_image.node.spec
  output_dir = "./checks"
  expect     = ["Welcome to LinuxKit"]
}

# Nothing makes the publication wait for the check: Terraform may publish first, or
# publish a broken image when only the check fails.
resource "resin_publish" "node" {
  images     = [resin_image.node.spec]
  repository = "registry.example.com/fleet/node"
  tag        = "v1"
  depends_on = [resin_image.node]
}

resource "resin_publish" "unchecked" {
  images     = [resin_image.node.spec]
  repository = "registry.example.com/fleet/node"
  tag        = "v2"
}
