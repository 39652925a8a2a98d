resource "resin_package" "p" {
  image        = "linuxkit/sshd@sha256:abababababababababababababababababababababababababababababababab"
  capabilities = ["all"]
}
