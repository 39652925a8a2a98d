terraform import resin_package.sshd linuxkit/sshd:v1.0.0
