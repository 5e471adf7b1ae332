/** Who is asking: the token a request authenticated with. Services decide what it may see. */
export interface Caller {
  tokenId: string;
  tokenName: string;
  admin: boolean;
  /**
   * Environments this caller may use besides the token's own (a Slack user in a channel of an
   * environment with `triggers.slack.anyone`: that environment only; src/integrations/slack/).
   */
  environmentIds?: readonly string[];
}
