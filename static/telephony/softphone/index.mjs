/*
 * The softphone's entry, imported on demand by call-button/page.mjs (a dynamic
 * import()), so pages without a live call button never fetch any of it.
 */
export { CallControls } from "./controls.mjs";
export { Softphone } from "./phone.mjs";
export { Ringer } from "./ringer.mjs";
