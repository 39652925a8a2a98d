resource "resin_package" "p" {
  image = "linuxkit/dhcpcd@sha256:abababababababababababababababababababababababababababababababab"
  net   = "host"
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}
# A new network namespace, and no pid: a new pid namespace is the default.
resource "resin_package" "own_net" {
  image = "linuxkit/rngd@sha256:abababababababababababababababababababababababababababababababab"
  net   = "new"
}
