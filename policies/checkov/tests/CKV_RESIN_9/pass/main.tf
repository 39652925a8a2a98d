resource "resin_disk" "uki" {
  image  = resin_image.node.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec

  signing_certificate = file("keys/db.crt")
  signing_key_file    = "/secure/keys/db.key"
}

resource "resin_disk" "gce" {
  image  = resin_image.node.spec
  format = "gcp"
  stub   = resin_efi_stub.systemd.spec

  signing_certificate = file("keys/db.crt")
  signing_command     = ["/usr/local/bin/kms-sign", "projects/p/locations/global/keyRings/boot/cryptoKeys/db"]
}

# An iPXE script holds no UKI: the check does not apply.
resource "resin_disk" "netboot" {
  image    = resin_image.node.spec
  format   = "ipxe"
  base_url = "https://boot.example.com/images/node"
}
