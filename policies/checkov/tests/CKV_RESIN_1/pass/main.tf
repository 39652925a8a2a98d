resource "resin_package" "p" {
  image = "linuxkit/sshd@sha256:abababababababababababababababababababababababababababababababab"
}
resource "resin_kernel" "k" {
  image = "linuxkit/kernel:6.6.13@sha256:abababababababababababababababababababababababababababababababab"
}
