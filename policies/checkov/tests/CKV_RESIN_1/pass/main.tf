resource "resin_package" "p" {
  image = "linuxkit/sshd@sha256:abababababababababababababababababababababababababababababababab"
  net   = "new"
}
resource "resin_kernel" "k" {
  image = "linuxkit/kernel:6.6.13@sha256:abababababababababababababababababababababababababababababababab"
}
resource "resin_efi_stub" "s" {
  image = "registry.example.com/boot/systemd-boot-efi@sha256:abababababababababababababababababababababababababababababababab"
}
