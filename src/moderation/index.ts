export * from './default-terms.ts'
export * from './local-moderator.ts'
export * from './terms-file.ts'
export * from './types.ts'
