// placeholder until the LPM lands
export function route4Clear(): void {}
