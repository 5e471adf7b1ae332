import type { Kysely, Selectable, Transaction } from 'kysely';
import { BerthError } from '../../../errors/berth-error.js';
import type { Template, TemplateSpec } from '../../../domain/environment/environment-template.js';
import type { NewTemplate, TemplateChange, WrittenSpec } from '../../../ports/store.js';
import type { Database } from './database.js';

/**
 * The `templates` and `environment_written_specs` tables (migration 0017_templates): templates as
 * written, and what each environment that extends one wrote (its stored spec is the merge, so a
 * template change merges it again). JSON as text, times as ISO-8601 UTC text.
 */

export interface TemplatesTable {
  id: string;
  name: string;
  spec: string;
  extends: string | null;
  created_by_token_id: string | null;
  created_at: string;
  updated_at: string;
  revision: number;
}

export interface EnvironmentWrittenSpecsTable {
  environment_id: string;
  extends: string;
  spec: string;
}

interface TemplateDatabase {
  templates: TemplatesTable;
  environment_written_specs: EnvironmentWrittenSpecsTable;
}

function toTemplate(row: Selectable<TemplatesTable>): Template {
  return {
    id: row.id,
    name: row.name,
    spec: JSON.parse(row.spec) as TemplateSpec,
    createdByTokenId: row.created_by_token_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: row.revision,
  };
}

function templateExists(name: string): BerthError {
  return new BerthError('conflict', `a template named "${name}" already exists`, { name });
}

/** Removes an environment's written spec inside the transaction that deletes the environment. */
export async function deleteWrittenSpecIn(
  trx: Transaction<Database>,
  environmentId: string,
): Promise<void> {
  await (trx as unknown as Transaction<TemplateDatabase>)
    .deleteFrom('environment_written_specs')
    .where('environment_id', '=', environmentId)
    .execute();
}

export class TemplateTables {
  private readonly db: Kysely<TemplateDatabase>;

  constructor(
    db: Kysely<Database>,
    private readonly isUniqueViolation: (error: unknown) => boolean,
  ) {
    this.db = db as unknown as Kysely<TemplateDatabase>;
  }

  async create(template: NewTemplate): Promise<Template> {
    try {
      await this.db
        .insertInto('templates')
        .values({
          id: template.id,
          name: template.spec.name,
          spec: JSON.stringify(template.spec),
          extends: template.spec.extends ?? null,
          created_by_token_id: template.createdByTokenId,
          created_at: template.now,
          updated_at: template.now,
          revision: 1,
        })
        .execute();
    } catch (error) {
      if (this.isUniqueViolation(error)) throw templateExists(template.spec.name);
      throw error;
    }
    const created = await this.get(template.spec.name);
    if (!created) throw new BerthError('internal', `template ${template.id} vanished`);
    return created;
  }

  async get(name: string): Promise<Template | undefined> {
    const row = await this.db
      .selectFrom('templates')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? toTemplate(row) : undefined;
  }

  async list(): Promise<Template[]> {
    const rows = await this.db.selectFrom('templates').selectAll().orderBy('name').execute();
    return rows.map(toTemplate);
  }

  async update(name: string, change: TemplateChange): Promise<Template> {
    const result = await this.db
      .updateTable('templates')
      .set((eb) => ({
        spec: JSON.stringify(change.spec),
        extends: change.spec.extends ?? null,
        updated_at: change.now,
        revision: eb('revision', '+', 1),
      }))
      .where('name', '=', name)
      .where('revision', '=', change.expectedRevision)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) {
      const current = await this.get(name);
      if (!current) throw new BerthError('not_found', `template "${name}" not found`, { name });
      throw new BerthError(
        'conflict',
        `template "${name}" changed while it was being updated (revision ${current.revision}); try again`,
        { name },
      );
    }
    const updated = await this.get(name);
    if (!updated) throw new BerthError('not_found', `template "${name}" not found`, { name });
    return updated;
  }

  async delete(name: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('templates')
      .where('name', '=', name)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** The names of the templates that extend `name` directly. */
  async extending(name: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('templates')
      .select('name')
      .where('extends', '=', name)
      .orderBy('name')
      .execute();
    return rows.map((r) => r.name);
  }

  async putWrittenSpec(environmentId: string, written: WrittenSpec | undefined): Promise<void> {
    await this.db
      .deleteFrom('environment_written_specs')
      .where('environment_id', '=', environmentId)
      .execute();
    if (written === undefined) return;
    await this.db
      .insertInto('environment_written_specs')
      .values({
        environment_id: environmentId,
        extends: written.extends,
        spec: JSON.stringify(written.spec),
      })
      .execute();
  }

  async getWrittenSpec(environmentId: string): Promise<WrittenSpec | undefined> {
    const row = await this.db
      .selectFrom('environment_written_specs')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .executeTakeFirst();
    return row ? { extends: row.extends, spec: JSON.parse(row.spec) as unknown } : undefined;
  }

  /** The ids of the environments that extend one of `names` directly. */
  async environmentsExtending(names: readonly string[]): Promise<string[]> {
    if (names.length === 0) return [];
    const rows = await this.db
      .selectFrom('environment_written_specs')
      .select('environment_id')
      .where('extends', 'in', names)
      .orderBy('environment_id')
      .execute();
    return rows.map((r) => r.environment_id);
  }
}
