// Types of address.js (plain JS, shared with the supervisor inside workerd) for the host's
// TypeScript. The host imports it from src/ whether it runs from src/ or dist/.

/** How the egress policy sees one IP literal. */
export interface AddressClass {
  family: 4 | 6;
  /** Canonical text, IPv6 without brackets. */
  address: string;
  /** ipaddr.js's range of the address itself ('unicast', 'loopback', 'ipv4Mapped', ...). */
  range: string;
  /** The IPv4 addresses it carries (IPv4-mapped, -compatible, NAT64, 6to4, Teredo). */
  embedded: { address: string; range: string }[];
  /** Whether egress may reach it. */
  public: boolean;
}

/** null when `host` is not an IP literal (a name, or text no URL would accept as a host). */
export function classifyAddress(host: string): AddressClass | null;

/** True when `host` is an IP literal egress may reach. */
export function isPublicAddress(host: string): boolean;
