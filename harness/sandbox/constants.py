"""Mount points, statuses and fixed paths shared by every part of the sandbox."""


SUBMISSION_MOUNT = "/submission"
INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"

OK = "OK"
CRASH = "CRASH"
TIMEOUT = "TIMEOUT"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
OUTPUT_LIMIT = "OUTPUT_LIMIT"
SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"
STATUSES = (OK, CRASH, TIMEOUT, OUT_OF_MEMORY, OUTPUT_LIMIT, SANDBOX_UNAVAILABLE)

BWRAP = "bwrap"
SETPRIV = "/usr/bin/setpriv"
PRLIMIT = "/usr/bin/prlimit"
DEFAULT_UID_RANGE = (70000, 70255)
TOKEN_VAR = "HARNESS_SANDBOX_TOKEN"
FIX_HINT = ("install bubblewrap (`apt-get install bubblewrap`), allow user namespaces "
            "(`sysctl kernel.unprivileged_userns_clone=1`, on Ubuntu also "
            "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`), or run with --no-sandbox "
            "(no isolation: only for your own code)")
