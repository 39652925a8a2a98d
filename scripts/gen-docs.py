#!/usr/bin/env python3
"""Generates the registry docs (docs/index.md, docs/resources/<name>.md,
docs/data-sources/<name>.md) from the provider schema (`terraform providers schema -json`)
and the examples.

    gen-docs.py SCHEMA_JSON [--check]

With --check nothing is written; the exit code is 1 and the stale files are named when
the docs differ from what the schema and examples give. `make docs` regenerates them.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROVIDER = "registry.terraform.io/resinstack/resin"


def type_name(t):
    if isinstance(t, str):
        return {"string": "String", "number": "Number", "bool": "Boolean", "dynamic": "Dynamic"}[t]
    kind, inner = t
    return {"list": "List of ", "set": "Set of ", "map": "Map of "}[kind] + type_name(inner)


def clean(text):
    return " ".join(text.split())


def schema_section(block, path, out, anchors):
    """Writes Required/Optional/Read-Only lists for `block`; nested blocks follow later."""
    groups = {"Required": [], "Optional": [], "Read-Only": []}
    for name, attr in sorted(block.get("attributes", {}).items()):
        extras = ", Sensitive" if attr.get("sensitive") else ""
        line = f"- `{name}` ({type_name(attr['type'])}{extras}) {clean(attr.get('description', ''))}"
        if attr.get("required"):
            groups["Required"].append(line)
        elif attr.get("optional"):
            groups["Optional"].append(line)
        else:
            groups["Read-Only"].append(line)
    for name, nested in sorted(block.get("block_types", {}).items()):
        anchor = "nestedblock--" + "--".join(path + [name])
        mode = nested["nesting_mode"]
        kind = "Block List" if mode == "list" else f"Block {mode.capitalize()}"
        if nested.get("max_items") == 1:
            kind += ", Max: 1"
        desc = clean(nested["block"].get("description", ""))
        line = f"- `{name}` ({kind}) {desc} (see [below for nested schema](#{anchor}))"
        if nested.get("min_items", 0) > 0:
            groups["Required"].append(line)
        else:
            groups["Optional"].append(line)
        anchors.append((anchor, path + [name], nested["block"]))
    for title, lines in groups.items():
        if lines:
            out.append(f"### {title}\n")
            out.extend(lines)
            out.append("")


def render_schema(block, out):
    anchors = []
    schema_section(block, [], out, anchors)
    while anchors:
        anchor, path, nested = anchors.pop(0)
        out.append(f'<a id="{anchor}"></a>')
        out.append(f"### Nested Schema for `{'.'.join(path)}`\n")
        more = []
        schema_section(nested, path, out, more)
        anchors[0:0] = more


def example(path, lang):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [f"```{lang}", f.read().rstrip("\n"), "```", ""]


def frontmatter(title, description):
    return ["---", f'page_title: "{title}"', 'subcategory: ""', "description: |-",
            f"  {clean(description)}", "---", ""]


def render(schema):
    provider = schema["provider_schemas"][PROVIDER]
    pages = {}
    pblock = provider["provider"]["block"]
    out = frontmatter("resin Provider", pblock.get("description", ""))
    out += ["# resin Provider", "", clean(pblock.get("description", "")), "",
            "Source address: `resinstack/resin`. Plugin protocol 6; Terraform >= 1.0.", "",
            "## Example Usage", ""]
    out += example(os.path.join(ROOT, "examples/provider/provider.tf"), "terraform")
    out += ["## Schema", ""]
    render_schema(pblock, out)
    pages["docs/index.md"] = out
    for name, resource in sorted(provider.get("resource_schemas", {}).items()):
        block = resource["block"]
        short = name.removeprefix("resin_")
        out = frontmatter(f"{name} Resource - terraform-provider-resin", block.get("description", ""))
        out += [f"# {name} (Resource)", "", clean(block.get("description", "")), "", "## Example Usage", ""]
        out += example(os.path.join(ROOT, f"examples/resources/{name}/resource.tf"), "terraform")
        out += ["## Schema", ""]
        render_schema(block, out)
        imports = example(os.path.join(ROOT, f"examples/resources/{name}/import.sh"), "shell")
        if imports:
            out += ["## Import", "", "Import takes an image reference:", ""] + imports
        pages[f"docs/resources/{short}.md"] = out
    for name, source in sorted(provider.get("data_source_schemas", {}).items()):
        block = source["block"]
        short = name.removeprefix("resin_")
        out = frontmatter(f"{name} Data Source - terraform-provider-resin", block.get("description", ""))
        out += [f"# {name} (Data Source)", "", clean(block.get("description", "")), "", "## Example Usage", ""]
        out += example(os.path.join(ROOT, f"examples/data-sources/{name}/data-source.tf"), "terraform")
        out += ["## Schema", ""]
        render_schema(block, out)
        pages[f"docs/data-sources/{short}.md"] = out
    return {path: "\n".join(lines).rstrip("\n") + "\n" for path, lines in pages.items()}


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0]) as f:
        pages = render(json.load(f))
    stale = []
    for path, text in sorted(pages.items()):
        full = os.path.join(ROOT, path)
        current = open(full).read() if os.path.exists(full) else None
        if current != text:
            stale.append(path)
            if not check:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
                    f.write(text)
    if check and stale:
        print("stale docs (run `make docs`): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)
    for path in stale:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
