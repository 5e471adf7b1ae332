# Berth's universal image: Debian's /etc/profile resets PATH in login shells (`bash -l`, which
# Berth's setup scripts and commands use), dropping the image's PATH additions. Put back where
# `go install` and `cargo install` put programs.
export GOPATH="${GOPATH:-/root/go}"
for berth_dir in "$HOME/.cargo/bin" "$GOPATH/bin"; do
  case ":$PATH:" in
    *":$berth_dir:"*) ;;
    *) PATH="$berth_dir:$PATH" ;;
  esac
done
unset berth_dir
export PATH
