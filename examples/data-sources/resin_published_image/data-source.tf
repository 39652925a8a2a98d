# On another machine or CI job: the image a build published, read back by digest (no
# assembly), and the boot files made from it.
data "resin_published_image" "edge" {
  reference  = "registry.example.com/fleet/edge:v1"
  platform   = "linux/amd64"
  output_dir = "${path.module}/out"
}

resource "resin_efi_stub" "systemd" {
  image = "registry.example.com/boot/systemd-boot-efi:252"
}

# The same bytes as a UKI made from the original resin_image.
resource "resin_disk" "uki" {
  image  = data.resin_published_image.edge.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
}

# An iPXE script that boots the machines from the registry, by digest: base_url is the
# registry, or a pull-through mirror in the boot network, as the machines reach it.
resource "resin_disk" "netboot" {
  image    = data.resin_published_image.edge.spec
  format   = "ipxe"
  base_url = "http://mirror.boot.example.com:5000"
}
