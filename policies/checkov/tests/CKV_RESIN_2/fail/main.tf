resource "resin_package" "p" {
  image        = "linuxkit/sshd@sha256:abababababababababababababababababababababababababababababababab"
  net          = "new"
  capabilities = ["all"]
}
