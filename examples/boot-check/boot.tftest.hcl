# `terraform test`: builds the image, boots it, and checks what the boot showed. Each run
# applies for real and destroys at the end (the console log stays in output_dir).

run "the_image_boots" {
  command = apply

  assert {
    condition     = resin_boot_check.node.boot_seconds > 0 && resin_boot_check.node.boot_seconds <= 300
    error_message = "The image came up in ${resin_boot_check.node.boot_seconds} s."
  }

  assert {
    condition     = length(resin_boot_check.node.matches) == 4
    error_message = "Every expected pattern has a time: ${jsonencode(resin_boot_check.node.matches)}."
  }

  assert {
    condition     = resin_boot_check.node.matches["RESIN-INIT-OK"] <= resin_boot_check.node.matches["RESIN-SERVICE-OK"]
    error_message = "init printed before the service: ${jsonencode(resin_boot_check.node.matches)}."
  }

  assert {
    condition     = resin_boot_check.node.matches["RESIN-BOOT-DONE"] == resin_boot_check.node.boot_seconds
    error_message = "The boot counts as done at the last pattern."
  }

  assert {
    condition     = contains(["kvm", "tcg"], resin_boot_check.node.accelerator)
    error_message = "The VM ran under ${resin_boot_check.node.accelerator}."
  }
}

# Nothing changed: a plan of the same configuration keeps the check and what it saw
# (a check to boot again would have no boot_seconds yet).
run "a_second_plan_boots_nothing" {
  command = plan

  assert {
    condition     = resin_boot_check.node.boot_seconds == run.the_image_boots.boot.seconds
    error_message = "The check stands: it boots again only when what it boots changes."
  }
}
