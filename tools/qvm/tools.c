/* SPDX-License-Identifier: MIT */
/* qvm tools [--format mcp|openai|anthropic] [--agent ID]: the tool
 * definitions `qvm mcp` serves, for function-calling frameworks. They come
 * from the one table in mcp_tools.c; only the envelope differs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"
#include "create_flags.h"
#include "mcp.h"

#define VERB "tools"

static const char tools_help[] =
    "usage: qvm tools [--format mcp|openai|anthropic] [--agent ID]\n"
    "\n"
    "Prints, as JSON on stdout, the tools `qvm mcp` serves (the same table),\n"
    "for frameworks that call functions without MCP:\n"
    "  mcp        {\"tools\": [...]} as MCP's tools/list result: name, title,\n"
    "             description, inputSchema, outputSchema, annotations (default)\n"
    "  openai     [{\"type\": \"function\", \"function\": {\"name\", \"description\",\n"
    "             \"parameters\"}}] (Chat Completions tools; parameters is the\n"
    "             inputSchema, a JSON Schema 2020-12 object)\n"
    "  anthropic  [{\"name\", \"description\", \"input_schema\"}] (Messages API tools)\n"
    "The openai and anthropic forms carry no output schema or annotations:\n"
    "those formats have no place for them. Run a call with `qvm mcp`.\n"
    "\n"
    "  --format F   mcp (default), openai or anthropic\n"
    "  --agent ID   the tools offered to agent ID (also `qvm --agent ID tools`\n"
    "               or $QVM_AGENT): the sandbox tools, not the vm_* or\n"
    "               ssh_key_* ones\n";

static json_object *member(json_object *o, const char *key) {
  json_object *v = NULL;
  json_object_object_get_ex(o, key, &v);
  return json_object_get(v);
}

static json_object *convert(json_object *mcp_tool, const char *format) {
  json_object *o = json_object_new_object();
  if (!strcmp(format, "openai")) {
    json_object *fn = json_object_new_object();
    json_object_object_add(fn, "name", member(mcp_tool, "name"));
    json_object_object_add(fn, "description", member(mcp_tool, "description"));
    json_object_object_add(fn, "parameters", member(mcp_tool, "inputSchema"));
    json_object_object_add(o, "type", json_object_new_string("function"));
    json_object_object_add(o, "function", fn);
  } else {
    json_object_object_add(o, "name", member(mcp_tool, "name"));
    json_object_object_add(o, "description", member(mcp_tool, "description"));
    json_object_object_add(o, "input_schema", member(mcp_tool, "inputSchema"));
  }
  return o;
}

static int tools_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"format", 1, 0, 'f'}, {"agent", 1, 0, 'a'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  mcp_server srv = {0};
  const char *format = "mcp";
  int c, r;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 'h': return fputs(tools_help, stdout), QVM_EXIT_OK;
    case 'f': format = optarg; break;
    case 'a':
      if ((r = qvm_cli_agent_arg(VERB, optarg))) return r;
      srv.agent = optarg;
      break;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  if (strcmp(format, "mcp") && strcmp(format, "openai") && strcmp(format, "anthropic"))
    return qvm_cli_usage_error(VERB, "--format '%s' is unknown: use mcp, openai or anthropic",
                               format);
  const char *env_agent = getenv("QVM_AGENT");
  if (!srv.agent && env_agent && env_agent[0]) {
    qvm_error *err = NULL;
    if (qvm_vm_agent_check(env_agent, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
    srv.agent = env_agent;
  }
  json_object *list = mcp_tools_list(&srv), *out = NULL;
  if (!strcmp(format, "mcp")) {
    out = json_object_new_object();
    json_object_object_add(out, "tools", list);
  } else {
    out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(list); i++)
      json_object_array_add(out, convert(json_object_array_get_idx(list, i), format));
    json_object_put(list);
  }
  qvm_cli_print_json(out);
  json_object_put(out);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_tools = {
    "tools", "print the MCP tools as definitions for function calling (mcp, openai, anthropic)",
    tools_run};
