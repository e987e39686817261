# The contract's server flags (images/CONTRACT.md, "Server flags"), parsed once for every
# shell wrapper. The base image installs this file as /usr/local/lib/mtls-harness/contract.sh.
# A wrapper sources it, defines contract_version (print its one --version line), and calls
#
#   contract_parse "$@"
#
# which checks what the contract checks and sets, for the rest of the wrapper:
#   cert key             the files (required: a missing one exits 1, naming the flag)
#   root_ca crl          the files, or empty when not given
#   ca_names             FILE, "none", or empty when not given
#   ca_names_file        FILE, or empty (not given, or "none")
#   require              1 with --require, else 0
#   tls_max tls_given    "1.2" or "1.3" and 1, or empty and 0 when not given (the stack's
#                        own maximum)
#   auth_path auth_path_set   the URL path (it starts with "/") and 1, or empty and 0
#   port                 1-65535, 9443 when not given
# Usage errors (an unknown flag, a flag without its value, a bad value) print one line
# naming the flag, then the usage, and exit 2; a file that cannot be read, one line naming
# the flag and the file, and exit 2.
# --help prints the usage and exits 0. What a stack cannot do stays the wrapper's to say
# (exit 127, CONTRACT.md "Exit status 127").

CONTRACT_USAGE="usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]"

contract_die() { # status, message
  echo "server-mtls: $2" >&2
  [ "$1" = 2 ] && echo "$CONTRACT_USAGE" >&2
  exit "$1"
}

contract_parse() {
  cert="" key="" root_ca="" crl="" ca_names="" ca_names_file="" require=0
  tls_max="" tls_given=0 auth_path="" auth_path_set=0 port=9443
  local name value ca_names_set=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --cert=*|--key=*|--root-ca=*|--crl=*|--ca-names=*|--auth-path=*|--tls-max=*|--port=*)
        name=${1%%=*} value=${1#*=}
        shift
        set -- "$name" "$value" "$@"
        continue ;;
      --cert|--key|--root-ca|--crl|--ca-names|--auth-path|--tls-max|--port)
        [ $# -ge 2 ] || contract_die 2 "option $1 needs a value"
        case "$1" in
          --cert) cert=$2 ;; --key) key=$2 ;; --root-ca) root_ca=$2 ;; --crl) crl=$2 ;;
          --ca-names) ca_names=$2 ca_names_set=1 ;;
          --auth-path) auth_path=$2 auth_path_set=1 ;;
          --tls-max) tls_max=$2 tls_given=1 ;;
          --port) port=$2 ;;
        esac
        shift 2 ;;
      --require) require=1; shift ;;
      --version) contract_version; exit 0 ;;
      -h|--help) echo "$CONTRACT_USAGE"; exit 0 ;;
      *) contract_die 2 "unknown option $1" ;;
    esac
  done
  [ -n "$cert" ] || contract_die 1 "missing required option --cert"
  [ -n "$key" ] || contract_die 1 "missing required option --key"
  if [ "$tls_given" = 1 ]; then
    case "$tls_max" in 1.2|1.3) ;; *) contract_die 2 "--tls-max must be 1.2 or 1.3, got '$tls_max'" ;; esac
  fi
  case "$port" in ''|*[!0-9]*) contract_die 2 "--port must be a number, got '$port'" ;; esac
  { [ "$port" -ge 1 ] && [ "$port" -le 65535 ]; } || contract_die 2 "--port must be 1-65535, got $port"
  if [ "$auth_path_set" = 1 ]; then
    case "$auth_path" in
      /*) ;;
      *) contract_die 2 "--auth-path must be a URL path starting with /, got '$auth_path'" ;;
    esac
  fi
  if [ "$ca_names_set" = 1 ]; then
    case "$ca_names" in
      "") contract_die 2 "--ca-names needs FILE or none" ;;
      none) ;;
      *) ca_names_file=$ca_names ;;
    esac
  fi
  for name in cert key root-ca crl ca-names; do
    case "$name" in
      cert) value=$cert ;; key) value=$key ;; root-ca) value=$root_ca ;; crl) value=$crl ;;
      ca-names) value=$ca_names_file ;;
    esac
    # One line, no usage: the file is the problem, not the command line.
    [ -z "$value" ] || { [ -f "$value" ] && [ -r "$value" ]; } || { echo "server-mtls: cannot read --$name $value" >&2; exit 2; }
  done
}

# The contract's client flags (images/CONTRACT.md, "Client flags"), for the shell wrappers
# of clients: `contract_client_parse "$@"` checks them and sets
#   cert key             the files, both or neither (one alone exits 1, naming the other)
#   root_ca              the file, or empty
#   url                  https://HOST[:PORT][/PATH], https://localhost:9443 when not given
#   authority host port path   its parts: port 443 when the URL has none, path "/" at least;
#                        an IPv6 host is written [ADDR] in the URL and ADDR in host
# Usage errors (an unknown flag, a flag without its value, a URL that is not https with a
# host and a numeric port) print one line, then the usage, and exit 2.

CONTRACT_CLIENT_USAGE="usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]"

contract_client_die() { # status, message
  echo "request-mtls: $2" >&2
  [ "$1" = 2 ] && echo "$CONTRACT_CLIENT_USAGE" >&2
  exit "$1"
}

contract_client_parse() {
  cert="" key="" root_ca="" url=https://localhost:9443
  local name value rest
  while [ $# -gt 0 ]; do
    case "$1" in
      --cert=*|--key=*|--root-ca=*|--url=*)
        name=${1%%=*} value=${1#*=}
        shift
        set -- "$name" "$value" "$@"
        continue ;;
      --cert|--key|--root-ca|--url)
        [ $# -ge 2 ] || contract_client_die 2 "option $1 needs a value"
        case "$1" in --cert) cert=$2 ;; --key) key=$2 ;; --root-ca) root_ca=$2 ;; --url) url=$2 ;; esac
        shift 2 ;;
      --version) contract_version; exit 0 ;;
      -h|--help) echo "$CONTRACT_CLIENT_USAGE"; exit 0 ;;
      *) contract_client_die 2 "unknown option $1" ;;
    esac
  done
  if [ -n "$cert" ] && [ -z "$key" ]; then contract_client_die 1 "missing required option --key"; fi
  if [ -n "$key" ] && [ -z "$cert" ]; then contract_client_die 1 "missing required option --cert"; fi
  case "$url" in
    https://?*) rest=${url#https://} ;;
    *) contract_client_die 2 "--url must be https://HOST[:PORT][/PATH], got $url" ;;
  esac
  authority=${rest%%/*}
  path=${rest#"$authority"}
  path=/${path#/}
  case "$authority" in
    \[*\]:*) host=${authority%]:*}; host=${host#[}; port=${authority##*]:} ;;
    \[*\]) host=${authority#[}; host=${host%]}; port=443 ;;
    *:*) host=${authority%:*} port=${authority##*:} ;;
    *) host=$authority port=443 ;;
  esac
  case "$port" in ''|*[!0-9]*) contract_client_die 2 "bad port in --url $url" ;; esac
  [ -n "$host" ] || contract_client_die 2 "--url must be https://HOST[:PORT][/PATH], got $url"
}
