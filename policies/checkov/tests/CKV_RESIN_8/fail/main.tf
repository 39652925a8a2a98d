resource "resin_disk" "netboot" {
  image    = resin_image.node.spec
  format   = "ipxe"
  base_url = "http://boot.example.com/images/node"
}
