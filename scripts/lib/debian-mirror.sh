# Sourced by scripts that fetch from Debian: prints the URI of the plain Debian
# archive that this machine's own apt sources use, read at run time, so that no
# host name is ever written into the repository.
#
#   debian_mirror            -> e.g. http://mirror.example/debian (no trailing /)
#
# DEBIAN_MIRROR in the environment wins.

# Print "URI<TAB>suites<TAB>components<TAB>signed-by" for every enabled deb
# entry of the machine's apt sources (one-line .list and deb822 .sources).
list_apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    # deb [opt=val ...] URI suite component...
    sed -e 's/#.*//' "$f" | awk '
      $1 == "deb" {
        i = 2; signed = ""
        if ($i ~ /^\[/) {
          while (i <= NF) {
            o = $i; gsub(/[][]/, "", o)
            if (o ~ /^signed-by=/) { sub(/^signed-by=/, "", o); signed = o }
            if ($i ~ /\]$/) break
            i++
          }
          i++
        }
        comps = ""
        for (k = i + 2; k <= NF; k++) comps = comps " " $k
        if (i + 1 <= NF) print $i "\t" $(i + 1) "\t" comps "\t" signed
      }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    # deb822 stanzas separated by blank lines; comments start with '#'.
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && uris != "") {
          n = split(uris, u, " ")
          for (k = 1; k <= n; k++) print u[k] "\t" suites "\t" comps "\t" signed
        }
        types = ""; uris = ""; suites = ""; comps = ""; signed = ""; enabled = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]/ { next }   # continuation line (e.g. an inline key block)
      {
        line = $0; key = line; sub(/:.*/, "", key); val = line; sub(/^[^:]*:[[:space:]]*/, "", val)
        key = tolower(key)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "components") comps = val
        else if (key == "signed-by") signed = val
        else if (key == "enabled") enabled = val
      }
      END { flush() }' "$f"
  done
}

# Pick the URI of the plain Debian archive: a suite that is a bare Debian
# codename or alias (no -security/-updates/-backports), component main, not a
# security URI, and signed by the Debian archive keyring (or no Signed-By).
# Third-party repos (their own keyrings, suites like "nodistro") are skipped.
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "${DEBIAN_MIRROR%/}"
    return 0
  fi
  local uri suites comps signed s
  while IFS=$'\t' read -r uri suites comps signed; do
    [[ "$uri" =~ ^https?:// ]] || continue
    [[ "$uri" == *security* ]] && continue
    [[ " $comps " == *" main "* ]] || continue
    [[ -z "$signed" || "$signed" == *debian-archive* ]] || continue
    for s in $suites; do
      case "$s" in
        buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)
          printf '%s\n' "${uri%/}"
          return 0 ;;
      esac
    done
  done < <(list_apt_sources)
  return 1
}
