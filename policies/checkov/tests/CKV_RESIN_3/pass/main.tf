resource "resin_package" "p" {
  image        = "linuxkit/sysctl@sha256:abababababababababababababababababababababababababababababababab"
  net          = "new"
  capabilities = ["CAP_SYS_ADMIN"]
  annotations  = {
    "resin-allow-sys-admin" = "true"
  }
}
