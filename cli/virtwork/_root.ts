/**
 * virtwork's root options that the subcommands take too (`virtwork --namespace x run`). Kept apart
 * from `_shared.ts` so that building the command tree loads no Kubernetes client.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import { VIRTWORK_SETTING_FLAGS as F } from "./_config_flags.ts";

/** Options of the subcommands also accepted before them: `virtwork --namespace x run`. */
const ROOT_CLUSTER_OPTIONS = ["namespace", "kubeconfig", "config"] as const;

/**
 * Adds `--namespace`, `--kubeconfig` and `--config` to the root command, as kubectl takes its
 * global flags. Commander lets the root take these options wherever they stand, so before an
 * action runs they are handed to the subcommand, which reads them as if given to it.
 */
export function addRootClusterOptions(program: Command): Command {
  program
    .option(`-n, ${F.namespace} <name>`, "namespace for run and cleanup (default virtwork)")
    .option(
      `${F.kubeconfig} <path>`,
      "kubeconfig file (default: in-cluster, KUBECONFIG, ~/.kube/config)",
    )
    .option(`${F.config} <file>`, "YAML configuration file (env VIRTWORK_CONFIG)");
  program.hook("preAction", (root, action) => {
    for (const key of ROOT_CLUSTER_OPTIONS) {
      if (root.getOptionValueSource(key) !== "cli") continue;
      if (!action.options.some((o) => o.attributeName() === key)) continue;
      if (action.getOptionValueSource(key) === "cli") continue;
      action.setOptionValueWithSource(key, root.getOptionValue(key), "cli");
    }
  });
  return program;
}

/** The root options {@linkcode addRootClusterOptions} adds, for the entry's front door. */
export const ROOT_CLUSTER_FLAGS = ["-n", F.namespace, F.kubeconfig, F.config] as const;
