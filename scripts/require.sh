# Sourced by the scripts here: `require TOOL...` stops the script at once,
# naming each missing tool and the Debian/Ubuntu package that has it, instead
# of failing halfway with "command not found" and half-made scratch state.
require() {
  local tool missing=() packages=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    missing+=("$tool")
    case $tool in
      psql | pgbench) packages+=(postgresql-client) ;;
      *) packages+=("$tool") ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$(basename "$0") needs ${missing[*]} on PATH; on Debian/Ubuntu: apt-get install ${packages[*]}" >&2
    exit 1
  fi
}
