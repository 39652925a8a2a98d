resource "resin_package" "p" {
  image        = "linuxkit/sysctl@sha256:abababababababababababababababababababababababababababababababab"
  net          = "new"
  capabilities = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
}
