"""Custom checkov checks for terraform-provider-resin (resin_* resources).

    checkov -d . --framework terraform --external-checks-dir policies/checkov --skip-download

Allowlists are explicit and reviewable: a package may hold CAP_SYS_ADMIN or share the
host's pid/net namespaces only when its `annotations` say so
(`resin-allow-sys-admin = "true"`, `resin-allow-host-namespaces = "true"`), and an image
is production when `labels = { environment = "production" }`.
"""
import json
import re

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck


def first(conf, key, default=None):
    """checkov wraps every attribute value in a list."""
    value = conf.get(key, [default])
    if isinstance(value, list):
        return value[0] if value else default
    return value


def strings(conf, key):
    value = first(conf, key, [])
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def annotation(conf, name):
    annotations = first(conf, "annotations", {}) or {}
    return str(annotations.get(name, "")).lower() == "true"


def blocks(conf, key):
    value = conf.get(key, [])
    return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []


class PinnedByDigest(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="resin images are pinned by digest (image = \"name@sha256:...\")",
            id="CKV_RESIN_1",
            categories=[CheckCategories.SUPPLY_CHAIN],
            supported_resources=["resin_kernel", "resin_package", "resin_efi_stub"],
        )

    def scan_resource_conf(self, conf):
        image = str(first(conf, "image", ""))
        return CheckResult.PASSED if re.search(r"@sha256:[0-9a-f]{64}$", image) else CheckResult.FAILED


class NoAllCapabilities(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="resin packages do not ask for all capabilities",
            id="CKV_RESIN_2",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_package"],
        )

    def scan_resource_conf(self, conf):
        for key in ["capabilities", "capabilities_add", "ambient"]:
            if any(c.lower() == "all" for c in strings(conf, key)):
                return CheckResult.FAILED
        return CheckResult.PASSED


class SysAdminAllowlisted(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="CAP_SYS_ADMIN only for packages annotated resin-allow-sys-admin = \"true\"",
            id="CKV_RESIN_3",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_package"],
        )

    def scan_resource_conf(self, conf):
        asks = any(c == "CAP_SYS_ADMIN" for key in ["capabilities", "capabilities_add", "ambient"] for c in strings(conf, key))
        if asks and not annotation(conf, "resin-allow-sys-admin"):
            return CheckResult.FAILED
        return CheckResult.PASSED


# What a container gets when neither the package nor its image's label sets the namespace
# (LinuxKit's defaults): the host's network namespace, a new pid namespace.
NAMESPACE_DEFAULTS = {"net": "host", "pid": "new"}


def label_setting(conf, key):
    """The setting of the image's org.mobyproject.config label, which a plan knows (the
    package's `spec`, when checkov scans `terraform show -json` of a plan); None when the
    configuration alone is scanned or the label does not set it."""
    spec = first(conf, "spec")
    if not isinstance(spec, str):
        return None
    try:
        label = json.loads(spec).get("defaults", {}).get("label")
        value = json.loads(label).get(key) if label else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def effective_namespace(conf, key):
    """The namespace a package's container runs in: its own setting, else its image
    label's, else LinuxKit's default. An unset `net` is the host's network."""
    value = first(conf, key)
    if isinstance(value, str) and value:
        return value
    return label_setting(conf, key) or NAMESPACE_DEFAULTS[key]


class NoHostNamespaces(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="packages do not run in the host's pid or network namespace (an unset net is the host's) unless annotated resin-allow-host-namespaces = \"true\"",
            id="CKV_RESIN_4",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_package"],
        )

    def scan_resource_conf(self, conf):
        shares = any(effective_namespace(conf, key) in ("host", "root") for key in NAMESPACE_DEFAULTS)
        if shares and not annotation(conf, "resin-allow-host-namespaces"):
            return CheckResult.FAILED
        return CheckResult.PASSED


class NoLoginServicesInProduction(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="production images (labels.environment = \"production\") carry no getty or sshd package",
            id="CKV_RESIN_5",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_image"],
        )

    def scan_resource_conf(self, conf):
        labels = first(conf, "labels", {}) or {}
        if str(labels.get("environment", "")).lower() != "production":
            return CheckResult.PASSED
        for key in ["init", "onboot", "onshutdown", "services"]:
            for reference in strings(conf, key):
                if re.search(r"getty|sshd", reference):
                    return CheckResult.FAILED
        return CheckResult.PASSED


class NoWorldWritableFiles(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="file blocks of resin images are not world-writable",
            id="CKV_RESIN_6",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_image"],
        )

    def scan_resource_conf(self, conf):
        for block in blocks(conf, "file"):
            mode = str(first(block, "mode", "") or "")
            if re.fullmatch(r"0?[0-7]{3,4}", mode) and int(mode, 8) & 0o002:
                return CheckResult.FAILED
        return CheckResult.PASSED


SECRET_PATTERNS = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)(password|passwd|secret|token|api[_-]?key)\s*[:=]\s*\S+",
    r"AKIA[0-9A-Z]{16}",
]


# Paths that hold secrets whatever their contents look like: private keys (`*.key`,
# `id_ed25519`, `ssh_host_*_key`), password hashes, keystores and credential files.
SECRET_PATHS = [
    r"\.(key|p12|pfx|jks|keytab|kdbx)$",
    r"[-_.]key\.pem$",
    r"(^|/)(shadow|gshadow)-?$",
    r"(^|/)id_(rsa|dsa|ecdsa|ed25519)(_sk)?$",
    r"(^|/)ssh_host_[a-z0-9]+_key$",
    r"(^|/)\.(netrc|pgpass|git-credentials)$",
    r"(^|/)\.aws/credentials$",
    r"(^|/)\.docker/config\.json$",
]


class SecretsOnlySensitive(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="secrets in resin image files (contents that look like one, or a path such as *.key, */shadow, id_*) use sensitive_contents, not contents",
            id="CKV_RESIN_7",
            categories=[CheckCategories.SECRETS],
            supported_resources=["resin_image"],
        )

    def scan_resource_conf(self, conf):
        for block in blocks(conf, "file"):
            contents = first(block, "contents")
            if contents is None:
                continue
            path = str(first(block, "path", "") or "")
            if any(re.search(pattern, path) for pattern in SECRET_PATHS):
                return CheckResult.FAILED
            if any(re.search(pattern, str(contents)) for pattern in SECRET_PATTERNS):
                return CheckResult.FAILED
        return CheckResult.PASSED


class NetbootOverHttps(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="iPXE disks fetch the kernel and initrd over https (base_url = \"https://...\")",
            id="CKV_RESIN_8",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["resin_disk"],
        )

    def scan_resource_conf(self, conf):
        if str(first(conf, "format", "")) != "ipxe":
            # Not an iPXE script: the check does not apply (no PASSED for every other disk).
            return CheckResult.UNKNOWN
        base_url = str(first(conf, "base_url", "") or "")
        return CheckResult.PASSED if base_url.startswith("https://") else CheckResult.FAILED


UKI_FORMATS = ("uki", "raw-efi", "iso-efi", "gcp")
KEY_SOURCES = ("signing_key", "signing_key_file", "signing_command")


class UkisSigned(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="disks holding a UKI (uki, raw-efi, iso-efi, gcp) are signed for Secure Boot (signing_certificate and a key)",
            id="CKV_RESIN_9",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_disk"],
        )

    def scan_resource_conf(self, conf):
        if str(first(conf, "format", "")) not in UKI_FORMATS:
            # No UKI (an iPXE script): nothing to sign, the check does not apply.
            return CheckResult.UNKNOWN
        certificate = first(conf, "signing_certificate")
        key = any(first(conf, name) not in (None, "", []) for name in KEY_SOURCES)
        return CheckResult.PASSED if certificate and key else CheckResult.FAILED


class PublishedAfterABootCheck(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="publications wait for a boot check (depends_on names a resin_boot_check)",
            id="CKV_RESIN_10",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["resin_publish"],
        )

    def scan_resource_conf(self, conf):
        # checkov gives depends_on as the list of its references' texts (or a list of them).
        depends_on = conf.get("depends_on", [])
        texts = []
        for item in depends_on if isinstance(depends_on, list) else [depends_on]:
            texts.extend(item if isinstance(item, list) else [item])
        gated = any(re.match(r"^\$?\{?resin_boot_check\.", str(text)) for text in texts)
        return CheckResult.PASSED if gated else CheckResult.FAILED


check_pinned = PinnedByDigest()
check_all_caps = NoAllCapabilities()
check_sys_admin = SysAdminAllowlisted()
check_host_namespaces = NoHostNamespaces()
check_login_services = NoLoginServicesInProduction()
check_world_writable = NoWorldWritableFiles()
check_secrets = SecretsOnlySensitive()
check_netboot_https = NetbootOverHttps()
check_ukis_signed = UkisSigned()
check_published_after_boot_check = PublishedAfterABootCheck()
