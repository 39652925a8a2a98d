resource "resin_package" "p" {
  image        = "linuxkit/sysctl@sha256:abababababababababababababababababababababababababababababababab"
  capabilities = ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
}
