/**
 * The exec agent: a small Perl program started once per sandbox (`perl -e SOURCE DEFAULT_USER`)
 * through one Engine-API exec whose stdin/stdout stay attached. It runs commands on request so a
 * round trip costs a fork+exec inside the container instead of three Engine API calls.
 *
 * Perl because `perl-base` is an Essential Debian package: it is in every Debian-based image,
 * including debootstrap's minbase, with no extra install. Only core modules are used.
 *
 * Frames both ways: type (1 byte), id (u32 BE), length (u32 BE), payload.
 *   to the agent:   R run    payload = (N/a*)* of: argc, argv..., envc, "K=V"..., workdir, user, marker
 *                   I stdin data, C close stdin, K kill the command's process tree (payload: signal)
 *   from the agent: H hello (payload: agent pid), 1 stdout data, 2 stderr data, X exit (payload: code)
 *
 * Each command runs in its own session (setsid) with BERTH_EXEC_ID=<marker> in its environment;
 * a kill sends the signal to that session and to every process carrying the marker, in rounds
 * (SIGSTOP first so a fork loop cannot outrun it), which reaches daemonised descendants too.
 *
 * Out of the commands' reach: before anything else (a BEGIN block, before the rest is even
 * compiled) the agent makes itself not dumpable, prctl(PR_SET_DUMPABLE, 0), through perl's
 * `syscall` with the prctl number of the machine's architecture. A process that is not dumpable
 * can be inspected only with CAP_SYS_PTRACE, which no sandbox has, so the commands it runs (root
 * included) cannot open its /proc/<pid>/fd/* (its stdin and stdout: the channel), mem or environ,
 * nor ptrace it. Its children are not dumpable either until they exec their command. Where the
 * call is not possible (an architecture not listed, a kernel that refuses) the agent exits before
 * its hello, and the runtime falls back to one Engine-API exec per command. Signals still reach
 * it (the sandbox keeps CAP_KILL): a killed or stopped agent ends the channel, not a time limit
 * (see exec-agent-channel.ts).
 */
export const EXEC_AGENT_SOURCE = String.raw`
BEGIN {
  require Config;
  my ($cpu) = $Config::Config{archname} =~ /^([^-]+)/;
  my $nr = $cpu eq 'x86_64' ? 157
    : $cpu =~ /^(aarch64|riscv64|loongarch64)$/ ? 167
    : $cpu =~ /^(i[3-6]86|arm\w*|s390x?)$/ ? 172
    : $cpu =~ /^(powerpc|ppc)/ ? 171 : 0;
  # PR_SET_DUMPABLE (4) to 0, then PR_GET_DUMPABLE (3) must answer 0.
  unless ($nr && syscall($nr, 4, 0, 0, 0, 0) == 0 && syscall($nr, 3, 0, 0, 0, 0) == 0) {
    print STDERR "berth exec agent: cannot make itself undumpable on $cpu\n";
    exit 3;
  }
}
use strict; use warnings;
use POSIX ();
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
binmode STDIN; binmode STDOUT;
my $default_user = defined $ARGV[0] ? $ARGV[0] : '';
$SIG{PIPE} = 'IGNORE';
my $got_chld = 0;
$SIG{CHLD} = sub { $got_chld = 1 };
my %base_env = %ENV;
my %jobs;
my $inbuf = '';
my $outq = '';
sub frame { my ($t, $id, $d) = @_; $outq .= pack('a1 N N', $t, $id, length $d) . $d; }
sub flush_out {
  while (length $outq) {
    my $w = syswrite(STDOUT, $outq);
    if (!defined $w) { next if $!{EINTR} || $!{EAGAIN}; kill_all(); POSIX::_exit(0); }
    substr($outq, 0, $w, '');
  }
}
sub nonblock { my $fh = shift; my $fl = fcntl($fh, F_GETFL, 0); fcntl($fh, F_SETFL, $fl | O_NONBLOCK); }
sub child_fail { my ($msg, $code) = @_; syswrite(STDERR, $msg); POSIX::_exit($code); }
sub switch_user {
  my ($spec) = @_;
  my ($u, $g) = split /:/, $spec, 2;
  my ($uid, $gid, $home, $name);
  if ($u =~ /^\d+$/) {
    $uid = $u; my @pw = getpwuid($uid);
    if (@pw) { ($name, $gid, $home) = ($pw[0], $pw[3], $pw[7]); } else { $gid = 0; }
  } else {
    my @pw = getpwnam($u);
    child_fail("berth: unknown user '$u'\n", 126) unless @pw;
    ($name, $uid, $gid, $home) = ($pw[0], $pw[2], $pw[3], $pw[7]);
  }
  if (defined $g && length $g) {
    if ($g =~ /^\d+$/) { $gid = $g; }
    else { my $n = getgrnam($g); child_fail("berth: unknown group '$g'\n", 126) unless defined $n; $gid = $n; }
  }
  my @groups = ($gid);
  if (defined $name) {
    setgrent();
    while (my @gr = getgrent()) { push @groups, $gr[2] if grep { $_ eq $name } split / /, $gr[3]; }
    endgrent();
  }
  $) = join(' ', $gid, @groups);
  POSIX::setgid($gid) or child_fail("berth: setgid $gid: $!\n", 126);
  POSIX::setuid($uid) or child_fail("berth: setuid $uid: $!\n", 126);
  child_fail("berth: could not become user '$spec'\n", 126) if $< != $uid || $> != $uid;
  if (defined $home) { $ENV{HOME} = $home; }
  if (defined $name) { $ENV{USER} = $name; $ENV{LOGNAME} = $name; }
}
sub start_job {
  my ($id, $payload) = @_;
  my @f = unpack('(N/a*)*', $payload);
  my $argc = shift @f; my @argv = splice(@f, 0, $argc);
  my $envc = shift @f; my @env = splice(@f, 0, $envc);
  my ($workdir, $user, $marker) = @f;
  $user = $default_user unless length $user;
  my ($in_r, $in_w, $out_r, $out_w, $err_r, $err_w);
  pipe($in_r, $in_w) && pipe($out_r, $out_w) && pipe($err_r, $err_w)
    or do { frame('2', $id, "berth: pipe: $!\n"); frame('X', $id, '126'); return; };
  my $pid = fork();
  if (!defined $pid) { frame('2', $id, "berth: fork: $!\n"); frame('X', $id, '126'); return; }
  if ($pid == 0) {
    POSIX::dup2(fileno($in_r), 0); POSIX::dup2(fileno($out_w), 1); POSIX::dup2(fileno($err_w), 2);
    POSIX::setsid();
    $SIG{PIPE} = 'DEFAULT'; $SIG{CHLD} = 'DEFAULT';
    %ENV = %base_env;
    for my $kv (@env) { my ($k, $v) = split /=/, $kv, 2; $ENV{$k} = defined $v ? $v : ''; }
    $ENV{BERTH_EXEC_ID} = $marker;
    switch_user($user) if length $user && $user ne 'root' && $user ne '0' && $user ne '0:0';
    if (length $workdir) { chdir $workdir or child_fail("berth: cannot enter working directory '$workdir': $!\n", 126); }
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    my $code = $!{ENOENT} ? 127 : 126;
    child_fail($code == 127 ? "berth: $argv[0]: command not found\n" : "berth: $argv[0]: $!\n", $code);
  }
  close $in_r; close $out_w; close $err_w;
  nonblock($in_w); nonblock($out_r); nonblock($err_r);
  $jobs{$id} = { pid => $pid, marker => $marker, in => $in_w, out => $out_r, err => $err_r, inbuf => '', ineof => 0 };
}
sub read_pipe {
  my ($job, $key, $type, $id) = @_;
  my $fh = $job->{$key}; return unless $fh;
  my $r = sysread($fh, my $buf, 65536);
  if (defined $r && $r > 0) { frame($type, $id, $buf); return 1; }
  return 0 if !defined $r && ($!{EAGAIN} || $!{EINTR});
  close $fh; $job->{$key} = undef; return 0;
}
sub write_stdin {
  my ($job) = @_;
  my $fh = $job->{in}; return unless $fh;
  if (length $job->{inbuf}) {
    my $w = syswrite($fh, $job->{inbuf});
    if (defined $w) { substr($job->{inbuf}, 0, $w, ''); }
    elsif (!$!{EAGAIN} && !$!{EINTR}) { close $fh; $job->{in} = undef; $job->{inbuf} = ''; return; }
  }
  if (!length $job->{inbuf} && $job->{ineof}) { close $fh; $job->{in} = undef; }
}
sub read_file { my $p = shift; open(my $fh, '<', $p) or return undef; local $/; my $d = <$fh>; close $fh; return $d; }
sub kill_tree {
  my ($job, $sig) = @_;
  my $needle = "\0BERTH_EXEC_ID=$job->{marker}\0";
  for my $round (1 .. 8) {
    kill 'STOP', -$job->{pid}; kill $sig, -$job->{pid};
    my @victims;
    opendir(my $d, '/proc') or last;
    for my $p (readdir $d) {
      next unless $p =~ /^\d+$/ && $p != $$;
      my $stat = read_file("/proc/$p/stat"); next unless defined $stat;
      $stat =~ s/^.*\)\s+//s; my @s = split / /, $stat;
      next if $s[0] eq 'Z';
      my $env = read_file("/proc/$p/environ");
      push @victims, $p if $s[3] == $job->{pid} || (defined $env && index("\0$env", $needle) >= 0);
    }
    closedir $d;
    last unless @victims;
    kill 'STOP', @victims; kill $sig, @victims;
    kill 'CONT', @victims if $sig ne 'KILL' && $sig ne '9';
    select(undef, undef, undef, 0.01);
  }
}
sub kill_all { for my $job (values %jobs) { kill_tree($job, 'KILL'); } }
sub finish_job {
  my ($id, $status) = @_;
  my $job = $jobs{$id};
  while (read_pipe($job, 'out', '1', $id)) {}
  while (read_pipe($job, 'err', '2', $id)) {}
  for my $k ('in', 'out', 'err') { close $job->{$k} if $job->{$k}; }
  my $code = POSIX::WIFEXITED($status) ? POSIX::WEXITSTATUS($status) : 128 + POSIX::WTERMSIG($status);
  frame('X', $id, "$code");
  delete $jobs{$id};
}
sub handle_frame {
  my ($t, $id, $p) = @_;
  if ($t eq 'R') { start_job($id, $p); return; }
  my $job = $jobs{$id}; return unless $job;
  if ($t eq 'I') { $job->{inbuf} .= $p; }
  elsif ($t eq 'C') { $job->{ineof} = 1; }
  elsif ($t eq 'K') { kill_tree($job, length $p ? $p : 'KILL'); }
  write_stdin($job);
}
frame('H', 0, "$$");
flush_out();
my $stdin_open = 1;
while (1) {
  my ($rin, $win) = ('', '');
  vec($rin, 0, 1) = 1 if $stdin_open;
  for my $job (values %jobs) {
    vec($rin, fileno($job->{out}), 1) = 1 if $job->{out};
    vec($rin, fileno($job->{err}), 1) = 1 if $job->{err};
    vec($win, fileno($job->{in}), 1) = 1 if $job->{in} && length $job->{inbuf};
  }
  # A SIGCHLD that arrived after the last waitpid must not leave select() waiting: its handler has
  # run by now (perl runs handlers between ops). A job whose pipes are closed is about to exit.
  my $closing = grep { !$_->{out} && !$_->{err} } values %jobs;
  my $timeout = $got_chld ? 0 : $closing ? 0.002 : %jobs ? 0.05 : undef;
  my $n = select(my $rout = $rin, my $wout = $win, undef, $timeout);
  if ($n > 0) {
    if ($stdin_open && vec($rout, 0, 1)) {
      my $r = sysread(STDIN, my $buf, 262144);
      if (defined $r && $r > 0) {
        $inbuf .= $buf;
        while (length($inbuf) >= 9) {
          my ($t, $id, $len) = unpack('a1 N N', $inbuf);
          last if length($inbuf) < 9 + $len;
          my $p = substr($inbuf, 9, $len);
          substr($inbuf, 0, 9 + $len, '');
          handle_frame($t, $id, $p);
        }
      } elsif (!defined $r && ($!{EINTR} || $!{EAGAIN})) {
      } else { kill_all(); POSIX::_exit(0); }
    }
    for my $id (keys %jobs) {
      my $job = $jobs{$id};
      read_pipe($job, 'out', '1', $id) if $job->{out} && vec($rout, fileno($job->{out}), 1);
      read_pipe($job, 'err', '2', $id) if $job->{err} && vec($rout, fileno($job->{err}), 1);
      write_stdin($job) if $job->{in} && vec($wout, fileno($job->{in}), 1);
    }
  }
  $got_chld = 0;
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $status = $?;
    for my $id (keys %jobs) { if ($jobs{$id}{pid} == $pid) { finish_job($id, $status); last; } }
  }
  flush_out();
}
`;
