/** strata's release version; a unit test keeps it equal to package.json's. */
export const strataVersion = '0.1.0';
