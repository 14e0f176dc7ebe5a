//go:build tools

// Package tools pins kwok, which simulates nodes and the kubelet's part of the
// pod lifecycle. It lives in its own module so its dependency graph never
// touches the control plane's.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
