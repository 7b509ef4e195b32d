# The harness's own check, run in every boot: a failing assertion and a non-zero exit must reach the
# host as failures, and details must survive the trip intact (quotes, backslashes, tabs, newlines).
result "a passing assertion" true
result "a failing assertion" false $'quote " backslash \\ tab \t newline\nsecond line'
check "a failing command" sh -c 'echo to-stdout; echo to-stderr >&2; exit 7'
# Any program may append its own lines; another "scenario" becomes a prefix of the name.
echo '{"scenario":"inner","name":"written directly","ok":true,"detail":{"n":1}}' >>"$TABBY_RESULTS"
exit 3
