/* Embeds lua/saas/{sandbox,contract,ctx}.lua and rules/default.lua (see embedded.h).
 * mk/lua.mk makes this object depend on those files. */
#include "engine/embedded.h"

#define EMBED(sym, file)                                                                    \
    __asm__(".pushsection .rodata\n"                                                        \
            ".balign 16\n"                                                                  \
            ".hidden " #sym "_start\n.globl " #sym "_start\n" #sym "_start:\n"              \
            ".incbin \"" file "\"\n"                                                        \
            ".byte 0\n"                                                                     \
            ".popsection\n");                                                               \
    extern const char sym##_start[]

EMBED(lua_sandbox, "lua/saas/sandbox.lua");
EMBED(lua_contract, "lua/saas/contract.lua");
EMBED(lua_ctx, "lua/saas/ctx.lua");
EMBED(rule_default, "rules/default.lua");

const struct embedded_file embedded_modules[] = {
    {"saas.sandbox", "lua/saas/sandbox.lua", lua_sandbox_start},
    {"saas.contract", "lua/saas/contract.lua", lua_contract_start},
    {"saas.ctx", "lua/saas/ctx.lua", lua_ctx_start},
    {0, 0, 0},
};

const struct embedded_file *embedded_default_rule(void)
{
    static const struct embedded_file f = {"default", "<built-in default>", rule_default_start};
    return &f;
}
