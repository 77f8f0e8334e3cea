/* SPDX-License-Identifier: MIT */
/* `nft list ruleset` of the caller's netns through libnftables, for shell
 * tests on hosts without the nft program. Exit 1 with nft's error. */
#include <stdio.h>

#include <nftables/libnftables.h>

int main(void) {
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) return 1;
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = nft_run_cmd_from_buffer(nft, "list ruleset");
  fputs(nft_ctx_get_output_buffer(nft), stdout);
  fputs(nft_ctx_get_error_buffer(nft), stderr);
  nft_ctx_free(nft);
  return r ? 1 : 0;
}
