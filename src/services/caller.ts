/** Who is asking: the token a request authenticated with. Services decide what it may see. */
export interface Caller {
  tokenId: string;
  tokenName: string;
  admin: boolean;
}
