#!/bin/sh
# udhcpc event script of the netbootui live initramfs (installed there as
# /etc/netbootui/udhcpc.script). udhcpc calls it with the event name as $1 and
# the lease in the environment (interface, ip, subnet, router, dns, domain).
# It configures the address and default route, writes
# /run/netbootui/resolv.conf (the initramfs's /etc/resolv.conf points to it)
# and records the lease in /run/netbootui/net.env for the booted system.

# udhcpc sets interface, ip, subnet, router, dns and domain.
# shellcheck disable=SC2154

out=/run/netbootui
mkdir -p "$out"

case $1 in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up || exit 1
	if [ -n "$router" ]; then
		while ip route del default dev "$interface" 2>/dev/null; do :; done
		for gw in $router; do
			route add default gw "$gw" dev "$interface" && break
		done
	fi
	{
		[ -n "$domain" ] && echo "search $domain"
		for ns in $dns; do echo "nameserver $ns"; done
	} >"$out/resolv.conf.tmp" && mv "$out/resolv.conf.tmp" "$out/resolv.conf"
	{
		echo "IFACE='$interface'"
		echo "IP='$ip'"
		echo "SUBNET='$subnet'"
		echo "ROUTER='$router'"
		echo "DNS='$dns'"
	} >"$out/net.env.tmp" && mv "$out/net.env.tmp" "$out/net.env"
	echo "netbootui: dhcp: $interface $ip/${subnet:-?} router ${router:-none}"
	;;
esac
exit 0
