# Reads the "mounts" array of a runtime.json as resin writes it (sorted keys, two-space
# indent) and prints one line per mount: destination|type|source|options,comma,separated
function value(line) {
    sub(/^[^:]*: */, "", line)
    gsub(/[",]/, "", line)
    return line
}
/^  "mounts": \[/ { inside = 1; next }
inside && /^  \]/ { inside = 0; next }
inside && /^    \{/ { destination = ""; type = ""; source = ""; options = ""; next }
inside && /^    \}/ { print destination "|" type "|" source "|" options; next }
inside && /^      "options": \[/ { in_options = 1; next }
in_options && /^      \]/ { in_options = 0; next }
in_options { item = $0; gsub(/[", ]/, "", item); options = options (options == "" ? "" : ",") item; next }
inside && /"destination":/ { destination = value($0) }
inside && /"source":/ { source = value($0) }
inside && /"type":/ { type = value($0) }
