terraform import resin_efi_stub.systemd registry.example.com/boot/systemd-boot-efi:252
