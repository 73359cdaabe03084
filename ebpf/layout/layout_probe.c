/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layout_probe.c — a host program the build script compiles and runs: it prints the size of
 * every struct of bosun_lb.h and the offset and size of every field, one line each
 * ("struct field offset size", field "-" for the whole struct). src/layout.rs compares the
 * Rust mirrors against this output (the idea of cilium's bpf_alignchecker.c).
 */
#include <stddef.h>
#include <stdio.h>
#include "bosun_lb.h"

#define S(t) printf("%s - 0 %zu\n", #t, sizeof(struct t))
#define F(t, f) printf("%s %s %zu %zu\n", #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f))

int main(void)
{
	S(bosun_lb4_service_key);
	F(bosun_lb4_service_key, vip_be);
	F(bosun_lb4_service_key, port_be);
	F(bosun_lb4_service_key, proto);
	F(bosun_lb4_service_key, pad);

	S(bosun_lb4_service);
	F(bosun_lb4_service, service_id);
	F(bosun_lb4_service, ready_count);
	F(bosun_lb4_service, terminating_count);
	F(bosun_lb4_service, flags);
	F(bosun_lb4_service, gen);
	F(bosun_lb4_service, pad);
	F(bosun_lb4_service, affinity_timeout_s);
	F(bosun_lb4_service, maglev_size);

	S(bosun_lb4_backend_key);
	F(bosun_lb4_backend_key, service_id);
	F(bosun_lb4_backend_key, slot);
	F(bosun_lb4_backend_key, gen);
	F(bosun_lb4_backend_key, pad);

	S(bosun_lb4_backend);
	F(bosun_lb4_backend, ip_be);
	F(bosun_lb4_backend, port_be);
	F(bosun_lb4_backend, flags);
	F(bosun_lb4_backend, pad);

	S(bosun_lb4_maglev_key);
	F(bosun_lb4_maglev_key, service_id);
	F(bosun_lb4_maglev_key, chunk);
	F(bosun_lb4_maglev_key, gen);
	F(bosun_lb4_maglev_key, pad);

	S(bosun_lb4_maglev_chunk);
	F(bosun_lb4_maglev_chunk, slot);

	S(bosun_lb4_affinity_key);
	F(bosun_lb4_affinity_key, netns_cookie);
	F(bosun_lb4_affinity_key, service_id);
	F(bosun_lb4_affinity_key, pad);

	S(bosun_lb4_affinity);
	F(bosun_lb4_affinity, last_used_ns);
	F(bosun_lb4_affinity, ip_be);
	F(bosun_lb4_affinity, port_be);
	F(bosun_lb4_affinity, slot);

	S(bosun_lb4_revnat_key);
	F(bosun_lb4_revnat_key, cookie);
	F(bosun_lb4_revnat_key, ip_be);
	F(bosun_lb4_revnat_key, port_be);
	F(bosun_lb4_revnat_key, pad);

	S(bosun_lb4_revnat);
	F(bosun_lb4_revnat, vip_be);
	F(bosun_lb4_revnat, port_be);
	F(bosun_lb4_revnat, pad);
	F(bosun_lb4_revnat, service_id);

	S(bosun_lb4_counters);
	F(bosun_lb4_counters, connections);
	F(bosun_lb4_counters, datagrams);
	F(bosun_lb4_counters, refused);

	printf("const BOSUN_MAGLEV_CHUNK %d %d\n", BOSUN_MAGLEV_CHUNK, 0);
	printf("const BOSUN_SVC_F_AFFINITY %d %d\n", BOSUN_SVC_F_AFFINITY, 0);
	printf("const BOSUN_SVC_F_MAGLEV %d %d\n", BOSUN_SVC_F_MAGLEV, 0);
	printf("const BOSUN_BE_F_TERMINATING %d %d\n", BOSUN_BE_F_TERMINATING, 0);
	return 0;
}
