resource "resin_package" "p" {
  image = "linuxkit/sshd:v1.0.0"
}
