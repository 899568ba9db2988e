// Package pxe boots nodes: it renders per-node boot entries (iPXE, pxelinux),
// serves bootloaders and rendered configs over TFTP, and serves scripts,
// kernels, initrds and root images over HTTP, turning every request into a
// boot event.
//
// Every file name a client sends, over TFTP or HTTP, passes CleanName before
// anything looks it up; files on disk are served through a FileRoot, which
// confines every open to one directory (symlinks included) and serves only
// regular files. The TFTP protocol is package tftp's; NewTFTPServer puts
// TFTPHandler (CleanName, then a TFTPSource: a FileRootSource, or Boot's
// composition of rendered and on-disk files) behind it.
//
// A request moves its node's boot state only as far as it proves the node
// (its token or fetch key, or its fixed inventory address; a MAC or a
// learned address is only a claim, which never fails a node), and a
// check-in is refused when it is a replay. The root= words of an entry come
// from the image's root transport (package roottransport).
package pxe
