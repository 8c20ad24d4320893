const m = await import('/work/main/src/app.ts')
const u = process.memoryUsage()
console.log('after app import', u.rss/1048576|0, 'heapUsed', u.heapUsed/1048576|0, 'external', u.external/1048576|0, Object.keys(m).length)
