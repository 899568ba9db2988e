// Package floodtest is the bounded flood suite of issue 13: a whole head
// (daemon with its HTTP and TFTP boot servers, the API socket, the SSH
// console) on loopback, flooded the ways an attacker or a broken network
// would, while simulated nodes boot through iPXE and pxelinux and API calls
// keep succeeding; afterwards the process's file descriptors and goroutines
// return to their baseline. It holds tests only; see README.md.
package floodtest
