// Package runbook reads the operator runbooks in docs/runbooks: the
// placeholder table at the top and the fenced shell blocks, in order.
//
// Its tests are the executed documentation: every ```sh block of every
// runbook must run in a subshell that stops at the first failing command
// (Guard, checked by CheckGuards), as an operator pastes it, and is run
// as written with a plain bash -c, against real redis-server
// processes staged into the failure the runbook is about, with the
// placeholders replaced by loopback ports, temp dirs and a file://
// repository; the end state is asserted by DEBUG DIGEST and the measured
// RTO of each scenario is printed. A runbook edit that breaks a command
// fails `go test ./...`.
//
// Block syntax: "```sh" runs in every path of the runbook;
// "```sh path=a,b" runs only when the test takes decision path a or b.
// Any other fence ("```text") is illustrative and never run.
package runbook
