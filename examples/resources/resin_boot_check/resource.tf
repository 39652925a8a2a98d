resource "resin_kernel" "k" {
  image   = "linuxkit/kernel:6.12.59"
  cmdline = "console=ttyS0"
}

resource "resin_package" "init" {
  image = "linuxkit/init:v1.0.0"
}

resource "resin_package" "getty" {
  image = "linuxkit/getty:v1.0.0"
}

resource "resin_image" "node" {
  name       = "node"
  output_dir = "${path.module}/out"
  kernel     = resin_kernel.k.spec
  init       = [resin_package.init.spec]
  services   = [resin_package.getty.spec]
}

# Boots the image in a VM at apply; the apply fails, with the console, unless the
# patterns appear in order within the timeout.
resource "resin_boot_check" "node" {
  image      = resin_image.node.spec
  output_dir = "${path.module}/checks"
  expect     = ["Run /init as init process", "Welcome to LinuxKit"]
}

# Publishing waits for the check: a broken image never leaves the pipeline.
resource "resin_publish" "node" {
  images     = [resin_image.node.spec]
  repository = "registry.example.com/fleet/node"
  tag        = "v1"
  depends_on = [resin_boot_check.node]
}
