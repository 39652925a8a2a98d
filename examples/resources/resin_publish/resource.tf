resource "resin_kernel" "k" {
  image    = "linuxkit/kernel:6.12.59"
  cmdline  = "console=ttyS0"
  platform = "linux/amd64"
}

resource "resin_kernel" "k_arm64" {
  image    = "linuxkit/kernel:6.12.59"
  cmdline  = "console=ttyAMA0"
  platform = "linux/arm64"
}

resource "resin_package" "init" {
  image    = "linuxkit/init:v1.0.0"
  platform = "linux/amd64"
}

resource "resin_package" "init_arm64" {
  image    = "linuxkit/init:v1.0.0"
  platform = "linux/arm64"
}

resource "resin_image" "edge" {
  name       = "edge"
  output_dir = "${path.module}/out/amd64"
  kernel     = resin_kernel.k.spec
  init       = [resin_package.init.spec]
}

resource "resin_image" "edge_arm64" {
  name       = "edge"
  output_dir = "${path.module}/out/arm64"
  kernel     = resin_kernel.k_arm64.spec
  init       = [resin_package.init_arm64.spec]
}

# Both platforms under one tag, as an index of two artifacts. The kernel and every
# initrd segment are blobs of their own: the next version uploads only what changed.
# Credentials: the provider's `registry` block or Docker's config, with push access.
resource "resin_publish" "edge" {
  images     = [resin_image.edge.spec, resin_image.edge_arm64.spec]
  repository = "registry.example.com/fleet/edge"
  tag        = "v1"
}

output "published" {
  # registry.example.com/fleet/edge@sha256:...: what machines and other jobs read.
  value = resin_publish.edge.reference
}
